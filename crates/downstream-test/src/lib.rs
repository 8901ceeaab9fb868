//! Nothing here: the tests in `tests/` use pipepool from outside its crate,
//! through its public API only, as a user's program does, so that a
//! lifetime, a private item or a missing `Send` bound a user would hit
//! fails this workspace's build.
