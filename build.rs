//! The integration tests generate one test per scenario file with rstest's `#[files]`, whose glob is
//! expanded at compile time: rebuild when a scenario is added, removed or changed.

fn main() {
    println!("cargo:rerun-if-changed=scenarios");
}
