pub mod names;
pub mod netns;
pub mod topology;
