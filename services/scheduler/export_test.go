package scheduler

// SetPublisher replaces the scheduler's publisher, for a test to make publishes fail.
func SetPublisher(s *Scheduler, pub Publisher) { s.pub = pub }
