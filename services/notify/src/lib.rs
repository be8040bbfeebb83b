//! rollcall-notify: delivers the notices the ledger writes to its outbox (see ARCHITECTURE.md).
