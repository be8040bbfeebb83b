//! Gallery port (see issue 3). Filled in by the gallery work.
