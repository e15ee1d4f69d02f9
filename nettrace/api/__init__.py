"""The HTTP API: signal push/read endpoints (signals_api), control endpoints later."""
