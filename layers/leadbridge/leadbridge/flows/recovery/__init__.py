"""What finds lost conversations: the sweep (and the blocked-account probe), drift, backfills, redrive. May import flows.worker."""
