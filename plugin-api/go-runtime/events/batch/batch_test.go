package batch

import (
	"encoding/json"
	"testing"
)

// The answer has the keys the server reads.
func TestTheAnswerHasTheServersKeys(t *testing.T) {
	out, _ := json.Marshal(Failed("1-0", "7"))
	if string(out) != `{"batchItemFailures":[{"itemIdentifier":"1-0"},{"itemIdentifier":"7"}]}` {
		t.Fatal(string(out))
	}
}
