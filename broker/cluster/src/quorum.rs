//! The replicated metadata log: openraft over tonic gRPC.
