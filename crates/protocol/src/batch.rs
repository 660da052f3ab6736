//! Record batch (magic v2) format: header view, validation and in-place stamping.
