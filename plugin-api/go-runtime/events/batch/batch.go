// Package batch is the answer a handler of a batch event (REDIS, NATS,
// MQTT) may give when only some of its records failed: those are retried
// and then dead-lettered, the others acknowledged (AWS Lambda's
// batchItemFailures).
package batch

// Response names the records that failed.
type Response struct {
	BatchItemFailures []ItemFailure `json:"batchItemFailures"`
}

// ItemFailure is one failed record, by its id.
type ItemFailure struct {
	ItemIdentifier string `json:"itemIdentifier"`
}

// Failed is a Response naming ids.
func Failed(ids ...string) Response {
	r := Response{BatchItemFailures: make([]ItemFailure, 0, len(ids))}
	for _, id := range ids {
		r.BatchItemFailures = append(r.BatchItemFailures, ItemFailure{ItemIdentifier: id})
	}
	return r
}
