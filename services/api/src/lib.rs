//! rollcall-api: the HTTP API and the staff web app (see ARCHITECTURE.md).
