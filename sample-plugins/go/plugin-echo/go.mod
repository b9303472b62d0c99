module pluginecho

go 1.19

require huaweicloud.com/go-runtime v0.0.0-00010101000000-000000000000

replace huaweicloud.com/go-runtime => ../../../plugin-api/go-runtime
