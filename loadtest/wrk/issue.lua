-- wrk script: every request issues a coupon to a new, distinct user.
--   wrk -t2 -c64 -d10s -s loadtest/wrk/issue.lua http://127.0.0.1:8080 -- <campaign_id> <issuer_key> [run_prefix] [with_email] [stop_on_409]
-- User ids are "<run_prefix>-<thread>-<n>"; give each run its own prefix (default: the time)
-- or a second run against the same campaign only hears already_issued.
-- with_email = 1 adds "email":"<user>@example.com", so every issued coupon queues a mail.
-- stop_on_409 = 1 stops each thread at its first 409 (sold_out, as users are distinct): a
-- campaign of stock N then issues exactly N coupons and the run ends before -d.
-- Prints the count of each status at the end, so a run that was mostly refusals is seen.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  campaign = args[1]
  key = args[2]
  prefix = args[3] or tostring(os.time())
  with_email = args[4] == "1"
  stop_on_409 = args[5] == "1"
  counter = 0
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
end

function request()
  counter = counter + 1
  local user = string.format("%s-%d-%d", prefix, tid, counter)
  local body
  if with_email then
    body = string.format('{"user_id":"%s","email":"%s@example.com"}', user, user)
  else
    body = string.format('{"user_id":"%s"}', user)
  end
  return wrk.format(nil, "/v1/campaigns/" .. campaign .. "/issue", nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if stop_on_409 and status == 409 then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, n in pairs(s) do
      total[code] = (total[code] or 0) + n
    end
  end
  for code, n in pairs(total) do
    io.write(string.format("status %d: %d\n", code, n))
  end
end
