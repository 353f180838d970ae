CREATE TABLE `dnssec_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`zone` text NOT NULL,
	`role` text NOT NULL,
	`algorithm` integer NOT NULL,
	`tag` integer NOT NULL,
	`dnskey` text NOT NULL,
	`private_key` text NOT NULL,
	`state` text NOT NULL,
	`created_at` integer NOT NULL,
	`activated_at` integer,
	`retired_at` integer
);
