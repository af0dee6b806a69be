//! hsm-demo library.
