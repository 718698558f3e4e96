//! Credentials for the emulator, which checks none.

/// Anonymous credentials: what every client uses on the emulator.
pub(crate) fn anonymous_credentials() -> google_cloud_auth::credentials::Credentials {
    google_cloud_auth::credentials::anonymous::Builder::new().build()
}
