"""HTTP interface: health probes, dependencies and the versioned API router."""
