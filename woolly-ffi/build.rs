// Gives libwoolly.so a SONAME carrying the major version, so that programs linked against it
// find `libwoolly.so.0` at run time however the file was installed.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libwoolly.so.{major}");
    }
}
