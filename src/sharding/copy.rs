//! Splitting `COPY ... FROM STDIN` data into rows and fields
//! (placeholder: written by the COPY splitter).
