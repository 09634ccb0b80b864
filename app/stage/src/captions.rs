//! Captions, the state badge, notices and the attract screen, as bevy UI.
//!
//! Text is shaped by bevy's parley with the bundled Amiri font (OFL, Arabic and Latin): Arabic
//! joins and runs right to left, English left to right, and a mixed line is ordered by the
//! Unicode bidi algorithm with the paragraph direction taken from its first strong letter.
//! Each caption is aligned by that direction. The avatar's words are spans, so the word being
//! spoken (from the voice's word timings, on the played-sample clock) is highlighted.

use bevy::prelude::*;
use hiwar_animation::Activity;

use super::{StageClock, StageState};

/// The caption font, relative to the assets folder.
pub const FONT: &str = "fonts/Amiri-Regular.ttf";

const SPOKEN: Color = Color::srgb(0.97, 0.97, 0.97);
const CURRENT: Color = Color::srgb(1.0, 0.80, 0.25);
const UPCOMING: Color = Color::srgb(0.72, 0.74, 0.78);
const PERSON: Color = Color::srgb(0.75, 0.88, 1.0);
/// The avatar's caption line, in percent of the viewport height.
const AVATAR_VH: f32 = 5.0;

/// A word of the avatar's caption and when it is heard (clock samples).
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionWord {
    pub text: String,
    pub start: u64,
    pub end: u64,
}

/// What the captions show.
#[derive(Resource, Default, Debug)]
pub struct Captions {
    /// The person's words: a partial transcript while they speak, then the final one.
    pub person: String,
    pub person_final: bool,
    /// The avatar's words as the answer wrote them, with their timings.
    pub avatar: Vec<CaptionWord>,
    /// Show the answer's tashkeel (an answer asked for full marks, for the voice, would
    /// otherwise read as a children's book).
    pub marks: bool,
}

/// Whether a line's first strong letter is right-to-left (Arabic script).
pub fn is_rtl(text: &str) -> bool {
    for c in text.chars() {
        if hiwar_speech::text::is_arabic(c) && c.is_alphabetic() {
            return true;
        }
        if c.is_alphabetic() {
            return false;
        }
    }
    false
}

#[derive(Component)]
pub struct PersonLine;
#[derive(Component)]
pub struct AvatarLine;
#[derive(Component)]
pub struct AvatarWord(usize);
#[derive(Component)]
pub struct StatusText;
#[derive(Component)]
pub struct StatusDot;
#[derive(Component)]
pub struct NoticePanel;
#[derive(Component)]
pub struct NoticeText;
#[derive(Component)]
pub struct Attract;
#[derive(Component)]
pub struct OutOfService;

/// The caption font handle.
#[derive(Resource, Clone)]
pub struct CaptionFont(pub Handle<Font>);

fn font(f: &CaptionFont, vh: f32) -> TextFont {
    TextFont { font: f.0.clone().into(), font_size: FontSize::Vh(vh), ..default() }
}

/// Builds the overlay on `camera`.
pub fn spawn_ui(commands: &mut Commands, assets: &AssetServer, camera: Entity) -> Handle<Font> {
    let handle: Handle<Font> = assets.load(FONT);
    let f = CaptionFont(handle.clone());
    commands.insert_resource(f.clone());
    commands
        .spawn((
            Node { width: percent(100), height: percent(100), flex_direction: FlexDirection::Column, justify_content: JustifyContent::FlexEnd, ..default() },
            UiTargetCamera(camera),
        ))
        .with_children(|root| {
            // The state badge, top left.
            root.spawn((
                Node {
                    position_type: PositionType::Absolute,
                    top: vh(2.0),
                    left: vh(2.0),
                    padding: UiRect::axes(vh(1.2), vh(0.5)),
                    align_items: AlignItems::Center,
                    column_gap: vh(1.0),
                    border_radius: BorderRadius::all(vh(2.0)),
                    ..default()
                },
                BackgroundColor(Color::srgba(0.08, 0.1, 0.14, 0.7)),
            ))
            .with_children(|badge| {
                badge.spawn((
                    Node { width: vh(1.6), height: vh(1.6), border_radius: BorderRadius::all(vh(0.8)), ..default() },
                    BackgroundColor(UPCOMING),
                    StatusDot,
                ));
                badge.spawn((Text::new(""), font(&f, 3.0), TextColor(SPOKEN), StatusText));
            });
            // Notices, top centre.
            root.spawn((
                Node {
                    position_type: PositionType::Absolute,
                    top: vh(2.0),
                    left: percent(20),
                    width: percent(60),
                    padding: UiRect::all(vh(1.0)),
                    justify_content: JustifyContent::Center,
                    display: Display::None,
                    border_radius: BorderRadius::all(vh(1.0)),
                    ..default()
                },
                BackgroundColor(Color::srgba(0.55, 0.1, 0.08, 0.85)),
                NoticePanel,
            ))
            .with_child((Text::new(""), font(&f, 3.0), TextColor(SPOKEN), TextLayout::justify(Justify::Center), NoticeText));
            // Captions, bottom.
            root.spawn((
                Node { width: percent(100), flex_direction: FlexDirection::Column, padding: UiRect::axes(vw(4.0), vh(1.5)), row_gap: vh(0.8), ..default() },
                BackgroundColor(Color::srgba(0.05, 0.06, 0.09, 0.72)),
            ))
            .with_children(|panel| {
                panel.spawn((
                    Text::new(""),
                    font(&f, 3.6),
                    TextColor(PERSON),
                    TextLayout::justify(Justify::Start),
                    Node { width: percent(100), ..default() },
                    PersonLine,
                ));
                panel.spawn((
                    Text::new(""),
                    font(&f, AVATAR_VH),
                    TextColor(SPOKEN),
                    TextLayout::justify(Justify::Start),
                    Node { width: percent(100), ..default() },
                    AvatarLine,
                ));
            });
            // The attract screen (kiosk, after inactivity).
            root.spawn((overlay(), BackgroundColor(Color::srgba(0.02, 0.25, 0.32, 0.9)), Attract)).with_children(|a| {
                a.spawn((Text::new("أهلاً وسهلاً! تفضّل، تحدّث معي"), font(&f, 7.0), TextColor(SPOKEN), TextLayout::justify(Justify::Center)));
                a.spawn((Text::new("Welcome! Come and talk to me"), font(&f, 5.0), TextColor(UPCOMING), TextLayout::justify(Justify::Center)));
                a.spawn((
                    Text::new("المس الشاشة أو اضغط المسافة للتحدث · Touch the screen or press space to talk"),
                    font(&f, 3.0),
                    TextColor(UPCOMING),
                    TextLayout::justify(Justify::Center),
                ));
            });
            // Out of service: over everything, until the watchdog sees the stage work again.
            root.spawn((overlay(), BackgroundColor(Color::srgb(0.12, 0.12, 0.14)), OutOfService)).with_children(|a| {
                a.spawn((Text::new("خارج الخدمة"), font(&f, 9.0), TextColor(SPOKEN), TextLayout::justify(Justify::Center)));
                a.spawn((Text::new("Out of service"), font(&f, 6.0), TextColor(UPCOMING), TextLayout::justify(Justify::Center)));
                a.spawn((
                    Text::new("نعتذر عن الإزعاج، يرجى مراجعة أحد الموظفين · Sorry — please ask a member of staff"),
                    font(&f, 3.0),
                    TextColor(UPCOMING),
                    TextLayout::justify(Justify::Center),
                ));
            });
        });
    handle
}

fn justify_for(text: &str) -> Justify {
    if is_rtl(text) { Justify::Right } else { Justify::Left }
}

type PersonQuery<'w, 's> = Query<'w, 's, (&'static mut Text, &'static mut TextLayout), (With<PersonLine>, Without<AvatarLine>)>;
type AvatarQuery<'w, 's> = Query<'w, 's, (Entity, &'static mut TextLayout), (With<AvatarLine>, Without<PersonLine>)>;

/// Rebuilds the caption lines when their text changes and highlights the word being heard.
pub fn update_captions(
    mut commands: Commands,
    captions: Res<Captions>,
    clock: Res<StageClock>,
    caption_font: Option<Res<CaptionFont>>,
    mut person: PersonQuery,
    mut avatar: AvatarQuery,
    mut words: Query<(&AvatarWord, &mut TextColor)>,
) {
    let Some(caption_font) = caption_font else { return };
    if captions.is_changed() {
        if let Ok((mut text, mut layout)) = person.single_mut() {
            text.0.clone_from(&captions.person);
            layout.justify = justify_for(&captions.person);
        }
        if let Ok((line, mut layout)) = avatar.single_mut() {
            let shown = |t: &str| if captions.marks { t.to_string() } else { t.chars().filter(|c| !hiwar_speech::voice::is_tashkeel(*c)).collect() };
            let all: String = captions.avatar.iter().map(|w| shown(&w.text)).collect::<Vec<_>>().join(" ");
            layout.justify = justify_for(&all);
            commands.entity(line).despawn_related::<Children>();
            let n = captions.avatar.len();
            commands.entity(line).with_children(|l| {
                for (i, w) in captions.avatar.iter().enumerate() {
                    let text = if i + 1 < n { format!("{} ", shown(&w.text)) } else { shown(&w.text) };
                    l.spawn((TextSpan::new(text), font(&caption_font, AVATAR_VH), TextColor(UPCOMING), AvatarWord(i)));
                }
            });
        }
        return;
    }
    let pos = clock.position();
    for (word, mut color) in &mut words {
        let Some(w) = captions.avatar.get(word.0) else { continue };
        let c = if pos >= w.start && pos < w.end {
            CURRENT
        } else if pos >= w.end {
            SPOKEN
        } else {
            UPCOMING
        };
        if color.0 != c {
            color.0 = c;
        }
    }
}

/// The state badge, the notices, the attract screen and the out-of-service screen.
#[allow(clippy::type_complexity, reason = "bevy queries over disjoint UI panels")]
pub fn update_status(
    state: Res<StageState>,
    mut text: Query<&mut Text, (With<StatusText>, Without<NoticeText>)>,
    mut dot: Query<&mut BackgroundColor, With<StatusDot>>,
    mut notice: Query<&mut Node, (With<NoticePanel>, Without<Attract>, Without<OutOfService>)>,
    mut notice_text: Query<&mut Text, (With<NoticeText>, Without<StatusText>)>,
    mut attract: Query<&mut Node, (With<Attract>, Without<NoticePanel>, Without<OutOfService>)>,
    mut out_of_service: Query<&mut Node, (With<OutOfService>, Without<NoticePanel>, Without<Attract>)>,
) {
    if !state.is_changed() {
        return;
    }
    let (label, color) = match state.activity {
        Activity::Idle => ("جاهز · Ready", UPCOMING),
        Activity::Listening => ("أستمع · Listening", Color::srgb(0.3, 0.85, 0.45)),
        Activity::Thinking => ("أفكّر · Thinking", Color::srgb(1.0, 0.8, 0.25)),
        Activity::Speaking => ("أتحدّث · Speaking", Color::srgb(0.35, 0.65, 1.0)),
    };
    if let Ok(mut t) = text.single_mut() {
        t.0 = label.to_string();
    }
    if let Ok(mut d) = dot.single_mut() {
        d.0 = color;
    }
    let lines: Vec<String> = state
        .notices
        .iter()
        .map(|n| {
            let (ar, en) = n.text();
            format!("{ar}\n{en}")
        })
        .collect();
    if let Ok(mut node) = notice.single_mut() {
        node.display = if lines.is_empty() { Display::None } else { Display::Flex };
    }
    if let Ok(mut t) = notice_text.single_mut() {
        t.0 = lines.join("\n");
    }
    if let Ok(mut node) = attract.single_mut() {
        node.display = if state.attract && !state.out_of_service { Display::Flex } else { Display::None };
    }
    if let Ok(mut node) = out_of_service.single_mut() {
        node.display = if state.out_of_service { Display::Flex } else { Display::None };
    }
}

/// A full-window, centred column, hidden until shown (the attract screen, out of service).
fn overlay() -> Node {
    Node {
        position_type: PositionType::Absolute,
        width: percent(100),
        height: percent(100),
        flex_direction: FlexDirection::Column,
        justify_content: JustifyContent::Center,
        align_items: AlignItems::Center,
        row_gap: vh(2.0),
        display: Display::None,
        ..default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_from_the_first_strong_letter() {
        assert!(is_rtl("مرحبا بكم"));
        assert!(is_rtl("«أبغى» أجدد الـ Emirates ID حقي"));
        assert!(!is_rtl("Emirates ID تجديد"));
        assert!(!is_rtl("123 ..."));
    }
}
