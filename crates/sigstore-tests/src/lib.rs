//! Nothing to link: this crate exists for its test (`tests/cosign.rs`), so that only that test binary compiles and links the `sigstore` crate.
