//! The OCI distribution protocol: talking to registries (auth, manifests, blobs).
