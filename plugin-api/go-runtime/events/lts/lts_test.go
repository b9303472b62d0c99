package lts

import "testing"

func TestGetRawData(t *testing.T) {
	e := LTSTriggerEvent{Lts: LTSBody{Data: "bG9n"}}
	if raw, err := e.GetRawData(); err != nil || string(raw) != "log" {
		t.Fatalf("%q %v", raw, err)
	}
	e.Lts.Data = "not base64!"
	if _, err := e.GetRawData(); err == nil {
		t.Fatal("bad base64 is an error")
	}
}
