//! Pushing images to registries: blobs, mounts, manifests.
