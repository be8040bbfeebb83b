//! Debounced matcher and tracker state machines (see issue 5).
