//! Integration and end-to-end tests on the emulators live in `tests/`.
