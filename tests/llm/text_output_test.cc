#include "llm/text_output.h"

#include <gtest/gtest.h>

namespace eventloom::llm {
namespace {

TEST(TextOutput, ReleasesTextAsItComes) {
    TextOutput out;
    EXPECT_EQ(out.Add("Hello"), "Hello");
    EXPECT_EQ(out.Add(" world"), " world");
    EXPECT_EQ(out.Finish(), "");
    EXPECT_EQ(out.text(), "Hello world");
}

TEST(TextOutput, HoldsAnIncompleteUtf8CharacterUntilItsLastByte) {
    TextOutput out;
    std::string euro = "\xE2\x82\xAC";  // U+20AC, three bytes
    EXPECT_EQ(out.Add("a" + euro.substr(0, 1)), "a");
    EXPECT_EQ(out.Add(euro.substr(1, 1)), "");
    EXPECT_EQ(out.Add(euro.substr(2, 1)), euro);
    EXPECT_EQ(out.text(), "a" + euro);
}

TEST(TextOutput, DropsAnIncompleteCharacterAtTheEnd) {
    TextOutput out;
    EXPECT_EQ(out.Add("ok\xF0\x9F"), "ok");
    EXPECT_EQ(out.Finish(), "");
    EXPECT_EQ(out.text(), "ok");
}

TEST(TextOutput, StopSequenceEndsTheTextBeforeIt) {
    TextOutput out({"END"});
    EXPECT_EQ(out.Add("abc E"), "abc ");  // "E" may begin "END"
    EXPECT_EQ(out.Add("N"), "");
    EXPECT_EQ(out.Add("Dxyz"), "");
    EXPECT_TRUE(out.stopped());
    EXPECT_EQ(out.text(), "abc ");
    EXPECT_EQ(out.Add("more"), "");
    EXPECT_EQ(out.Finish(), "");
}

TEST(TextOutput, HeldTextIsReleasedWhenItTurnsOutNotToBeAStop) {
    TextOutput out({"</answer>"});
    EXPECT_EQ(out.Add("x </ans"), "x ");
    EXPECT_EQ(out.Add("wer"), "");
    EXPECT_EQ(out.Add("!"), "</answer!");
    EXPECT_FALSE(out.stopped());
    EXPECT_EQ(out.Add("</"), "");
    EXPECT_EQ(out.Finish(), "</");
    EXPECT_EQ(out.text(), "x </answer!</");
}

TEST(TextOutput, EarliestOfSeveralStopsWins) {
    TextOutput out({"bb", "a"});
    EXPECT_EQ(out.Add("xxbbya"), "xx");
    EXPECT_TRUE(out.stopped());
}

TEST(TextOutput, BytesThatFormNoCharacterBecomeReplacementCharacters) {
    TextOutput out;
    const std::string kReplacement = "\xEF\xBF\xBD";
    EXPECT_EQ(out.Add("a\x9E"), "a" + kReplacement);              // a lone continuation byte
    EXPECT_EQ(out.Add("\xC0\xAF"), kReplacement + kReplacement);  // an overlong form
    EXPECT_EQ(out.Add("\xED\xA0"), "");                           // may still complete...
    EXPECT_EQ(out.Add("\x80"), kReplacement + kReplacement + kReplacement);  // ...a surrogate
    EXPECT_EQ(out.Add("\xC3\xA9"), "\xC3\xA9");
}

TEST(ToValidUtf8, KeepsWellFormedTextAndReplacesTheRest) {
    EXPECT_EQ(ToValidUtf8("plain"), "plain");
    EXPECT_EQ(ToValidUtf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
    EXPECT_EQ(ToValidUtf8("\xF4\x90\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT_EQ(ToValidUtf8("x\xFFy"), "x\xEF\xBF\xBDy");
}

TEST(CompleteUtf8Prefix, CountsWholeCharacters) {
    EXPECT_EQ(CompleteUtf8Prefix(""), 0u);
    EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
    EXPECT_EQ(CompleteUtf8Prefix("a\xC3"), 1u);
    EXPECT_EQ(CompleteUtf8Prefix("a\xC3\xA9"), 3u);
    EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\x98"), 0u);
    EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\x98\x80"), 4u);
    EXPECT_EQ(CompleteUtf8Prefix("\x80\x80\x80\x80\x80"), 5u);  // invalid: passed through
    EXPECT_EQ(CompleteUtf8Prefix("a\xFF"), 2u);
}

}  // namespace
}  // namespace eventloom::llm
