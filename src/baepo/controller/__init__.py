"""The controller: the asyncio reconcile loop that drives rollouts."""
