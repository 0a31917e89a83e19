//! Pulling images from registries: manifest resolution, layer download, verify, extract.
