#pragma once
// Helpers of the supervisor tests: a temp dir per test, scripts written into it, a log
// sink that records lines, and waits with a deadline.

#include <doctest/doctest.h>

#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mycelium/log.hpp"
#include "mycelium/schema.hpp"
#include "test_support.hpp"

namespace mycelium::test {

/// A folder under /tmp for the test, removed at the end.
struct TempDir : test_support::TempDir {
    TempDir() : test_support::TempDir("myc-sup") {}
};

/// One recorded log line.
struct Line {
    std::string logger;
    spdlog::level::level_enum level;
    std::string text;
};

/// A sink that keeps every line; wait() blocks until a predicate over them holds.
class RecordingSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    std::vector<Line> lines() {
        std::lock_guard lock(records_mutex_);
        return records_;
    }

    /// Lines of `logger` containing `text`.
    std::vector<Line> matching(const std::string& logger, const std::string& text) {
        std::vector<Line> out;
        for (auto& l : lines()) {
            if (l.logger == logger && l.text.find(text) != std::string::npos) out.push_back(l);
        }
        return out;
    }

    /// Waits up to `timeout` for a line of `logger` containing `text`.
    bool wait_for(const std::string& logger, const std::string& text,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        std::unique_lock lock(records_mutex_);
        return changed_.wait_for(lock, timeout, [&] {
            return std::any_of(records_.begin(), records_.end(), [&](const Line& l) {
                return l.logger == logger && l.text.find(text) != std::string::npos;
            });
        });
    }

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        {
            std::lock_guard lock(records_mutex_);
            records_.push_back({std::string(msg.logger_name.data(), msg.logger_name.size()), msg.level,
                                std::string(msg.payload.data(), msg.payload.size())});
        }
        changed_.notify_all();
    }
    void flush_() override {}

private:
    std::mutex records_mutex_;
    std::condition_variable changed_;
    std::vector<Line> records_;
};

/// Adds a sink to the named loggers (log::get) for the object's lifetime. Create it
/// before anything logs there, destroy it after (loggers' sink lists are not locked).
class Attach {
public:
    Attach(std::shared_ptr<RecordingSink> sink, std::vector<std::string> loggers)
        : sink_(std::move(sink)), loggers_(std::move(loggers)) {
        for (const auto& name : loggers_) log::get(name)->sinks().push_back(sink_);
    }
    ~Attach() {
        for (const auto& name : loggers_) {
            auto& sinks = log::get(name)->sinks();
            sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
        }
    }
    Attach(const Attach&) = delete;
    Attach& operator=(const Attach&) = delete;

private:
    std::shared_ptr<RecordingSink> sink_;
    std::vector<std::string> loggers_;
};

/// Polls `done` every 2 ms until it holds or `timeout` passes.
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return test_support::wait_until(done, timeout);
}

/// A two-message schema for the link tests.
inline const schema::Registry& test_registry() {
    static const schema::Registry r =
        schema::Registry::load_string(test_support::TEXT_AND_COUNTER_CONTRACTS, "supervisor_test.yaml");
    return r;
}

}  // namespace mycelium::test
