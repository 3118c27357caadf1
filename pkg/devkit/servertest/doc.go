// Package servertest starts real servers for tests: an embedded nats-server with JetStream
// and a redis-server process, each on a free port with its own temporary state, stopped when
// the test ends. Tests never use the NATS and Redis on the machine's standard ports.
package servertest
