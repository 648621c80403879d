//! Rebuilds the binary when a dashboard file changes: `include_dir!` reads
//! `static/` at compile time, but cargo does not know to watch it.

fn main() {
    println!("cargo:rerun-if-changed=static");
}
