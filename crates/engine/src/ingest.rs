//! Turning the store's decoded segment rows into the engine's compact events.
