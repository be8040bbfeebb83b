//! rollcall-ledger (in progress).
