//! wsmschat browser SDK (work in progress).
