// The events history as every store engine keeps it: the rows the API, CLI
// and dashboard show, and the promise that background work can record them
// even while the database refuses writes.

/** One row of the history, as the API and CLI show it. */
export type StoredEvent = {
  id: number;
  /** Unix time in milliseconds. */
  time: number;
  kind: string;
  subject: string;
  oldState: string;
  newState: string;
  reason: string;
  region: string | null;
  data: unknown;
};

export type NewEvent = Omit<StoredEvent, 'id' | 'time' | 'region' | 'data'> & { time?: number; region?: string | null; data?: unknown };

export type EventQuery = {
  /** At most this many, newest first; 100 unless set, capped at 1000. */
  limit?: number;
  /** Only events with an id below this (the previous page's last id). */
  before?: number;
  /** Only events with an id above this, OLDEST first (for followers such as the event stream). */
  after?: number;
  kind?: string;
  region?: string;
  /** Only events at or after this time (ms). */
  since?: number;
  /** Only events before this time (ms). */
  until?: number;
};

/** The events history: written now, or deferred while the database refuses writes. */
export interface EventHistory {
  /** Writes an events row now; inside `transaction()` it is part of it. Throws a StorageError when the database cannot take it. */
  recordEvent(event: NewEvent): StoredEvent;
  /**
   * Records an event now if the database takes it, else keeps it (in order,
   * at most `maxPendingEvents`, the oldest dropped) for `flushEvents()`: for
   * history written by background work, which must not fail with the disk.
   */
  deferEvent(event: NewEvent): void;
  /** Writes the kept events, in one transaction; false when the database still cannot take them. */
  flushEvents(): boolean;
  /** Events kept for later, and events dropped because too many were kept. */
  pending(): { events: number; dropped: number };
  listEvents(query?: EventQuery): StoredEvent[];
}
