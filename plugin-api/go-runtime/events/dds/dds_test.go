package dds

import (
	"encoding/json"
	"testing"
)

func TestNamespaceAsObjectOrJSONString(t *testing.T) {
	for _, in := range []string{
		`{"records":[{"dds":{"size_bytes":"100","ns":{"db":"shop","coll":"reviews"}}}]}`,
		`{"records":[{"dds":{"size_bytes":100,"ns":"{\"db\":\"shop\",\"coll\":\"reviews\"}"}}]}`,
	} {
		var e DDSTriggerEvent
		if err := json.Unmarshal([]byte(in), &e); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		d := e.Records[0].DDS
		if d.Ns.Db != "shop" || d.Ns.Coll != "reviews" || d.SizeBytes != "100" {
			t.Fatalf("%s: %+v", in, d)
		}
		// Written back, ns is an object.
		var back map[string]interface{}
		_ = json.Unmarshal([]byte(e.String()), &back)
		ns := back["records"].([]interface{})[0].(map[string]interface{})["dds"].(map[string]interface{})["ns"]
		if _, ok := ns.(map[string]interface{}); !ok {
			t.Fatalf("ns written as %T", ns)
		}
	}
}
