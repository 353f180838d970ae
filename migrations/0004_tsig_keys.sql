CREATE TABLE `tsig_keys` (
	`name` text PRIMARY KEY NOT NULL,
	`algorithm` text NOT NULL,
	`secret` text NOT NULL,
	`allow` text NOT NULL,
	`created_at` integer NOT NULL,
	`last_used_at` integer,
	`revoked_at` integer
);
