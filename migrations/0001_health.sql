CREATE TABLE `health_state` (
	`endpoint` text PRIMARY KEY NOT NULL,
	`state` text NOT NULL,
	`reason` text NOT NULL,
	`transition` integer DEFAULT false NOT NULL,
	`since` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `overrides` (
	`subject` text PRIMARY KEY NOT NULL,
	`mode` text NOT NULL,
	`reason` text NOT NULL,
	`actor` text,
	`time` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `probe_results` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`time` integer NOT NULL,
	`agent` text NOT NULL,
	`agent_region` text NOT NULL,
	`endpoint` text NOT NULL,
	`ok` integer NOT NULL,
	`rtt_us` integer,
	`error` text
);
--> statement-breakpoint
CREATE INDEX `probe_results_time_idx` ON `probe_results` (`time`);--> statement-breakpoint
CREATE INDEX `probe_results_endpoint_idx` ON `probe_results` (`endpoint`);