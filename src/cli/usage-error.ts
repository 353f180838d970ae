// The one error that means "the command line is wrong": the entry prints the
// command's usage after it and exits 2 (any other error exits 1).

/** A mistake on the command line: a missing or contradictory option, a value that does not parse. */
export class UsageError extends Error {}
