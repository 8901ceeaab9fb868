module pipepool.invalid/bench/goproxy

go 1.19
