//! The POP3 client (mfetch): list, scan headers with TOP, fetch, delete.
