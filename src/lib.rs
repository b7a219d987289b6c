//! Forge: a declarative pipeline runner for LLM serving benchmarks.
pub mod steps;
