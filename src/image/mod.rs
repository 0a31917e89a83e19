//! Images on disk: references, layer extraction and reassembly, image configs, archives.

pub(crate) mod changes;
pub(crate) mod config;
pub(crate) mod layer;
pub(crate) mod reference;
pub(crate) mod tar_limit;
pub(crate) mod tarwrite;
