//! Hostile input against a live server: malformed and oversized requests,
//! slow clients, escaping paths, browser-origin attacks, sizes, and a
//! seeded fuzz over raw bytes. Each test starts its own server on a free
//! loopback port and talks raw HTTP/1.1 to it.

mod support;

// Cross-site requests, DNS rebinding, the content type and the token.
mod browser;
// Seeded random and mutated requests: the server stays up.
mod fuzz;
// Malformed request lines, headers and bodies; keep-alive after refusals.
mod parsing;
// Stored sizes: payload, result, stdout and stderr limits; invalid UTF-8.
mod sizes;
// Slow and silent clients: handler threads stay free, time-outs close them.
mod slow;
// Dashboard files: nothing outside the compiled-in folder is reachable.
mod statics;
