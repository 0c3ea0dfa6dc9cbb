//! CPU topology (being written).
