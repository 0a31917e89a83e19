//! Docker's JSON progress messages (pull, push): status lines and progress bars.
