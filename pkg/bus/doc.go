// Package bus is the one package in Tandem that knows NATS JetStream.
//
// It names the subjects (tandem.<kind>.<org>...: tokens are ids, never emails), declares the
// streams and durable consumers as data (Topology, applied by Bus.Declare), publishes
// protobuf messages with deterministic message ids so a retried publish is de-duplicated,
// and runs the one consume loop that owns the ack policy: a handler returns an error and the
// bus decides whether the message is acked, redelivered later, or given up on and recorded as
// a dead letter that becomes a visible sync error. Trace context rides in message headers so
// a trace follows a change from detection to write across services.
package bus
