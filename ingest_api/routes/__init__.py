"""One `APIRouter` per module: `events` (ingestion), `health` (probes), `metrics` (Prometheus)."""
