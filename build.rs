// The catalog, the migrations and the Dockerfile templates are embedded with
// include_dir!, which cannot tell cargo about files added later: say it here.
fn main() {
    for dir in ["extensions", "sql", "dockerfiles", "manifests"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
