"""``router: {kind: haproxy}``: a real HAProxy per listener, driven through its runtime API."""
