//! Ledger rules (see issue 4). Filled in by the ledger work.
