# ActiveRecord (6.1 in Debian 12) with ruby-pg, driven by test/t/123_stacks.pl through
# stdin/stdout (the protocol of harness.py).  Guide: each request checks a connection out and
# back in (with_connection, as Rails' executor does per request), idle_timeout below the rule and
# reaping_frequency below idle_timeout, so the pool closes idle connections before the server
# does.  Without it: connections owned by their threads (ActiveRecord::Base.connection kept
# across requests, as a background job thread does) — 6.1 does not recover one the server ended.
require "active_record"
require "set"

params = ENV.fetch("STACK_CONNINFO").split.map { |kv| kv.split("=", 2) }.to_h
guide = ENV.fetch("GUIDE", "1") == "1"
workers = Integer(ENV.fetch("WORKERS", "8"))
burst = Integer(ENV.fetch("BURST", "24"))
config = { adapter: "postgresql", host: params["host"], port: Integer(params["port"]),
           username: params["user"], database: params["dbname"], pool: workers,
           application_name: params["application_name"] }
config.merge!(idle_timeout: 1, reaping_frequency: 0.5) if guide
ActiveRecord::Base.establish_connection(config)

jobs = Queue.new
results = Queue.new
threads = Array.new(workers) do
  Thread.new do
    while (job = jobs.pop) != :stop
      begin
        if guide
          ActiveRecord::Base.connection_pool.with_connection { |c| c.select_value("SELECT 1") }
        else
          ActiveRecord::Base.connection.select_value("SELECT 1")
        end
        results << nil
      rescue StandardError => e
        results << "#{e.class}: #{e.message.lines.first.to_s.strip}"
      end
    end
  end
end

shown = Set.new
$stdin.each_line do |line|
  cmd = line.strip
  break if cmd == "quit"
  n = cmd == "burst" ? burst : 1
  n.times { jobs << :request }
  errors = Array.new(n) { results.pop }.compact
  errors.each { |e| puts "error: #{e}" if shown.add?(e) }
  puts "done requests=#{n} failed=#{errors.size}"
  $stdout.flush
end
workers.times { jobs << :stop }
threads.each(&:join)
