"""Pure domain logic: revisions, rollouts, events, and the ports adapters implement. No I/O."""
