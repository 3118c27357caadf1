package scheduler

// SetPublisher replaces the scheduler's publisher, for a test to make publishes fail.
func SetPublisher(s *Scheduler, pub Publisher) { s.pub = pub }

// SetQueue replaces the scheduler's view of the bus's queues, for a test to make it fail.
func SetQueue(s *Scheduler, q Queue) { s.queue = q }
