CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`time` integer NOT NULL,
	`kind` text NOT NULL,
	`subject` text NOT NULL,
	`old_state` text NOT NULL,
	`new_state` text NOT NULL,
	`reason` text NOT NULL,
	`region` text,
	`data` text
);
--> statement-breakpoint
CREATE INDEX `events_time_idx` ON `events` (`time`);--> statement-breakpoint
CREATE INDEX `events_kind_idx` ON `events` (`kind`);--> statement-breakpoint
CREATE INDEX `events_region_idx` ON `events` (`region`);--> statement-breakpoint
CREATE TABLE `meta` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `regions` (
	`id` text PRIMARY KEY NOT NULL,
	`doc` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `zone_settings` (
	`id` integer PRIMARY KEY NOT NULL,
	`doc` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	CONSTRAINT "zone_settings_single_row" CHECK("zone_settings"."id" = 1)
);
